"""Stopword lists for keyword analysis (accent-folded, lower case).

Short on purpose: only function words, so that BM25 keeps content words such as "data" or
"droit". English follows the Lucene/Snowball list; French the Snowball list plus elided forms.
"""

ENGLISH = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing don down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own s same she should so some such t than that the
    their theirs them themselves then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves
    """.split()  # noqa: SIM905 - a word list reads better as text
)

FRENCH = frozenset(
    """
    a ai aie aient aies ait as au aura aurai auraient aurais aurait auras aurez auriez
    aurions aurons auront aux avaient avais avait avec avez aviez avions avons ayant ayante
    ayantes ayants ayez ayons c ce ceci cela celà ces cet cette d dans de des du elle en es
    est et etaient etais etait etant etante etantes etants ete etee etees etes etiez etions
    eu eue eues eumes eurent eus eusse eussent eusses eussiez eussions eut eutes eux fumes
    furent fus fusse fussent fusses fussiez fussions fut futes ici il ils j je l la le les
    leur leurs lui m ma mais me meme mes moi mon n ne nos notre nous on ont ou par pas pour
    qu que quel quelle quelles quels qui s sa sans se sera serai seraient serais serait
    seras serez seriez serions serons seront ses soi soient sois soit sommes son sont soyez
    soyons suis sur t ta te tes toi ton tu un une vos votre vous y
    """.split()  # noqa: SIM905 - a word list reads better as text
)

BY_LANGUAGE: dict[str, frozenset[str]] = {"en": ENGLISH, "fr": FRENCH, "none": frozenset()}
