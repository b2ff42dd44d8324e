"""The dataset registry. Entries are lazy so listing them imports nothing heavy."""

from dparena.registry import Registry

datasets: Registry = Registry("dataset", "dparena.datasets.base:Dataset")

datasets.register_lazy(
    "adult", "dparena.datasets.adult:Adult", modality="tabular", extra="tabular",
    description="UCI Adult census income (32,561 private / 16,281 eval rows), target income",
)
datasets.register_lazy(
    "mnist", "dparena.datasets.images:MNIST", modality="image", extra="image",
    description="MNIST handwritten digits 28x28 (50,000 private / 10,000 eval), 10 classes",
)
datasets.register_lazy(
    "digits", "dparena.datasets.images:Digits", modality="image", extra="tabular",
    description="scikit-learn 8x8 digits (1,297 private / 500 eval), 10 classes; for tests",
)
datasets.register_lazy(
    "cifar10", "dparena.datasets.images:CIFAR10", modality="image", extra="image",
    description="CIFAR-10 32x32 colour (50,000 private / 10,000 eval), 10 classes; needs a download",
)
datasets.register_lazy(
    "rotten-tomatoes", "dparena.datasets.text:RottenTomatoes", modality="text", extra="text",
    description=("Rotten Tomatoes critic snippets, fresh / rotten (10,752 private / 2,000 eval); "
                 "offline asset"),
)
datasets.register_lazy(
    "news", "dparena.datasets.text:News", modality="text", extra="text",
    description=("English news articles of nine outlets, labelled by outlet (2,988 private / 800 "
                 "eval); offline asset"),
)
datasets.register_lazy(
    "yelp", "dparena.datasets.text:Yelp", modality="text", extra="text",
    description="Yelp reviews, 1-5 stars (hub Yelp/yelp_review_full); needs the datasets library",
)
datasets.register_lazy(
    "pubmed", "dparena.datasets.text:PubMed", modality="text", extra="text",
    description="PubMed abstracts, unlabelled (hub ccdv/pubmed-summarization); needs datasets",
)
# bring your own data (docs/your-data.md): the public schema comes from the suite or a schema file
datasets.register_lazy(
    "csv", "dparena.datasets.table_files:CSVTable", modality="tabular", extra="tabular",
    description=("Your table: CSV or parquet private / eval files and a public schema file "
                 "(TOML); docs/your-data.md"),
)
datasets.register_lazy(
    "image-folder", "dparena.datasets.image_folder:ImageFolder", modality="image", extra="image",
    description=("Your images: one sub-folder per class (ImageFolder layout) for private / eval; "
                 "declared size, channels and classes"),
)
datasets.register_lazy(
    "text-file", "dparena.datasets.text_files:TextFile", modality="text", extra="text",
    description=("Your texts: CSV or JSON-lines private / eval files with a text and an optional "
                 "label column; declared labels and prompts"),
)
