"""The dataset registry. Entries are lazy so listing them imports nothing heavy.

Each entry is a name and the class that implements it; what it is (modality, description,
install extra) is written on the class, where `dparena list` reads it without importing.
"""

from dparena.registry import Registry

datasets: Registry = Registry("dataset", "dparena.datasets.base:Dataset")

datasets.register_lazy("adult", "dparena.datasets.adult:Adult")
datasets.register_lazy("mnist", "dparena.datasets.images:MNIST")
datasets.register_lazy("digits", "dparena.datasets.images:Digits")
datasets.register_lazy("cifar10", "dparena.datasets.images:CIFAR10")
datasets.register_lazy("rotten-tomatoes", "dparena.datasets.text:RottenTomatoes")
datasets.register_lazy("news", "dparena.datasets.text:News")
datasets.register_lazy("yelp", "dparena.datasets.text:Yelp")
datasets.register_lazy("pubmed", "dparena.datasets.text:PubMed")
# bring your own data (docs/your-data.md): the public schema comes from the suite or a schema file
datasets.register_lazy("csv", "dparena.datasets.table_files:CSVTable")
datasets.register_lazy("image-folder", "dparena.datasets.image_folder:ImageFolder")
datasets.register_lazy("text-file", "dparena.datasets.text_files:TextFile")
