"""Reports rendered from results files: performance tables, plots, and the source document's three
comparison tables filled with measured evidence (English, or the document's Chinese with ``lang="zh"``).

Pure renderers (:mod:`.build`, :mod:`.markdown`, :mod:`.tabular`) work on parsed documents; only
:mod:`.write` touches files and :mod:`.plots` imports matplotlib. No framework is imported.
"""
