"""``cortex qdrant plan``: measure a source before migrating it.

One streaming pass (:mod:`.inventory`, with :mod:`.schema` for payloads) keeps a uniform
sample; :mod:`.experiment` loads that sample into embedded Qdrant under candidate settings;
:mod:`.estimate` extrapolates RAM, disk and time to the full count; :mod:`.tune` picks the
cheapest settings that meet the recall goal; :mod:`.report` renders the HTML page.
"""
