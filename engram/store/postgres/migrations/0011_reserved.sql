-- Reserved: the number of a migration of another issue-14 branch (migrations are numbered
-- 1..n, and analytics was given the next free number after them). At the merge, this file
-- gives way to that branch's migration of the same number.
SELECT 1;
