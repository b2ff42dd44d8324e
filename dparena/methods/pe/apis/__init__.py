"""Private Evolution APIs, one module per modality (:mod:`dparena.methods.pe.apis.text`, ...)."""
