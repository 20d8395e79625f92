"""Stopword lists for keyword analysis (accent-folded, lower case).

Short on purpose: only function words, so that BM25 keeps content words such as "data" or
"droit". English follows the Lucene/Snowball list; French the Snowball list plus elided forms.
"""

ENGLISH = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    s t don""".split()
)

FRENCH = frozenset(
    """au aux avec ce ces dans de des du elle en et eux il ils je la le les leur lui ma mais me
    meme mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes
    toi ton tu un une vos votre vous c d j l a m n s t y ete etee etees etes etant etante
    etants etantes suis es est sommes etes sont serai seras sera serons serez seront serais
    serait serions seriez seraient etais etait etions etiez etaient fus fut fumes futes furent
    sois soit soyons soyez soient fusse fusses fut fussions fussiez fussent ayant ayante ayantes
    ayants eu eue eues eus ai as avons avez ont aurai auras aura aurons aurez auront aurais
    aurait aurions auriez auraient avais avait avions aviez avaient eut eumes eutes eurent aie
    aies ait ayons ayez aient eusse eusses eussions eussiez eussent ceci cela celà cet cette ici
    ils les leurs quel quels quelle quelles sans soi""".split()
)

BY_LANGUAGE: dict[str, frozenset[str]] = {"en": ENGLISH, "fr": FRENCH, "none": frozenset()}
