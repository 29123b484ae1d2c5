"""Chapter helpers: what the book needs around the method, kept out of the method itself.

Opt-in (``import ugach_core.book.analysis`` ...); the method's modules never import this
package (only the command line uses ``provenance``). ``notes`` (each chapter's data note and
data-dependent phrases), ``cache`` (load a run if present, else train), ``provenance`` (the
one record every results file carries), ``tables`` (result tables from the results files),
``analysis`` (code statistics, chapter 8), ``generator_stats`` (the generator's policy,
chapter 9), ``ablations`` (the ablation grid, chapter 10), ``study`` (the study of the
rounds, chapters 7 and 10).
"""
