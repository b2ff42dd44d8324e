"""The method registry. Entries are lazy so listing them imports nothing heavy.

Each entry is a name and the class that implements it; what it is (modality, description,
install extra) is written on the class, where `dparena list` reads it without importing.
"""

from dparena.registry import Registry

methods: Registry = Registry("method", "dparena.methods.base:Method")

methods.register_lazy("independent-marginals",
                      "dparena.methods.baselines.marginals:IndependentMarginals")
methods.register_lazy("real", "dparena.methods.baselines.references:RealData")
methods.register_lazy("uniform", "dparena.methods.baselines.references:UniformSchema")
methods.register_lazy("pe-image", "dparena.methods.pe.method:PEImage")
methods.register_lazy("pe-text", "dparena.methods.pe.method:PEText")
methods.register_lazy("public-only", "dparena.methods.pe.method:PublicOnly")
methods.register_lazy("dp-merf", "dparena.methods.baselines.dp_merf:DPMERF")
methods.register_lazy("dp2stage", "dparena.methods.dp2stage.method:DP2Stage")
methods.register_lazy("dp-standard", "dparena.methods.dp2stage.method:DPStandard")
methods.register_lazy("aim", "dparena.methods.baselines.aim_mst:AIM")
methods.register_lazy("mst", "dparena.methods.baselines.aim_mst:MST")
methods.register_lazy("dp-finetune-lm", "dparena.methods.baselines.lm_finetune:DPFinetuneLM")
