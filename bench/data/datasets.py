"""The standard datasets: where each one comes from, its licence, its canonical image count and the
sha256 of every file (bench/data/manifests/sha256.json). Checking a folder against them is
bench.data.verify.

Sets published only as an archive without per-file checksums (DIV2K) get their checksums recorded
in the dataset folder on first prepare (trust on first use); later verifications compare with those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from bench.common.errors import HyperbenchError, did_you_mean

MANIFEST_PATH = Path(__file__).parent / "manifests" / "sha256.json"


@dataclass(frozen=True)
class Source:
    """An archive (zip or tar) and the folders inside it that hold the images."""

    url: str
    folders: tuple[str, ...]  # matched as a suffix of a member's folder, so the archive's top folder may vary
    sha256: str | None = None  # of the archive, where its publisher gives one
    filename: str = ""

    @property
    def archive_name(self) -> str:
        return self.filename or Path(urlparse(self.url).path).name


def github_archive(repo: str, commit: str, *folders: str) -> Source:
    """A repository snapshot at a commit. GitHub does not promise byte-stable archives, so no archive
    sha256: the per-file checksums after extraction are the check."""
    return Source(f"https://github.com/{repo}/archive/{commit}.zip", folders, None, f"{repo.split('/')[1]}-{commit}.zip")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    role: str  # "test" or "train"
    description: str
    count: int | None  # canonical number of images (None: depends on how it is derived)
    licence: str
    homepage: str  # the original publisher (URL or citation)
    source: Source | None
    names: tuple[str, ...] | None = None  # expected file names where no per-file checksums are published
    files: dict | None = field(default=None, compare=False)  # name -> sha256; None: from the manifest
    lazy: bool = False  # large sets: pixels are read from disk when used, not held in memory
    derived_from: str | None = None

    def checksums(self) -> dict | None:
        return self.files if self.files is not None else manifest().get(self.name, {}).get("files")

    def converted(self) -> dict:
        """Files stored as PNG but published as BMP: {png name: {"from": bmp name, "pixels_sha256": ...}}."""
        return {} if self.files is not None else manifest().get(self.name, {}).get("converted", {})

    def expected_names(self) -> list[str] | None:
        sums = self.checksums()
        return sorted(sums) if sums else (list(self.names) if self.names else None)

    @property
    def checksum_kind(self) -> str:
        if self.derived_from:
            return "recorded at extraction"
        return "per-file sha256 in the manifest" if self.checksums() else "archive only; per-file sha256 recorded at first prepare"


@lru_cache(maxsize=1)
def manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text())


# --------------------------------------------------------------------------- the registry

FFDNET = ("cszn/FFDNet", "e787f46df2f374ff3591186706229cb9a0591fea")
DNCNN = ("cszn/DnCNN", "e93b27812d3ff523a3a79d19e5e50d233d7a8d0a")
FBCNN = ("jiaxi-jiang/FBCNN", "54d1831927506b3247e2d4d245abb4f4dab1a1cd")
HELOU = ("majedelhelou/denoising_datasets", "58234876fef6f1b56306705c78dfd40cdb837b86")
BSDS_SNAPSHOT = ("Sisso16/ssn_pytorch", "c4f9ac8c43397cbacbf2e2ba1505efafa769435d")
BSDS_IMAGES = "BSR/BSDS500/data/images"

BSDS_HOME = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html (Martin et al., ICCV 2001)"
BSDS_LICENCE = "BSDS images come from the Corel collection; Berkeley shares them for non-commercial research and teaching only"
CLASSIC_LICENCE = "classic test images of mixed origin with no licence of their own; customary research use only, no redistribution rights"
DIV2K_HOME = "https://data.vision.ee.ethz.ch/cvl/DIV2K/ (Agustsson & Timofte, CVPRW 2017)"
DIV2K_LICENCE = "DIV2K is released for academic research only; no commercial use"
DIV2K_BASE = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"

DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


for _spec in (
    DatasetSpec("CBSD68", "test", "68 colour BSDS test images (denoising, Table 2)", 68, BSDS_LICENCE, BSDS_HOME,
                github_archive(*FFDNET, "testsets/CBSD68")),
    DatasetSpec("LIVE1", "test", "29 colour reference images of the LIVE IQA database (deJPEG, Table 1); BMP stored as PNG", 29,
                "LIVE image quality database, (c) University of Texas at Austin: free for research use with citation",
                "https://live.ece.utexas.edu/research/quality/subjective.htm (Sheikh et al.)",
                github_archive(*FBCNN, "testsets/LIVE1_color")),
    DatasetSpec("Set5", "test", "5 HR images (SR, Table 3)", 5, CLASSIC_LICENCE,
                "https://people.rennes.inria.fr/Aline.Roumy/results/SR_BMVC12.html (Bevilacqua et al., BMVC 2012)",
                github_archive(*HELOU, "CSet5")),
    DatasetSpec("Set14", "test", "14 HR images (SR); bridge is gray", 14, CLASSIC_LICENCE,
                "Zeyde, Elad & Protter, 'On single image scale-up using sparse-representations', Curves and Surfaces 2010",
                github_archive(*HELOU, "CSet14")),
    DatasetSpec("Kodak24", "test", "24 Kodak images, FFDNet's 500x500 centre crops (not the 768x512 originals)", 24,
                "released by Eastman Kodak for unrestricted research use (no formal licence text)", "https://r0k.us/graphics/kodak/",
                github_archive(*FFDNET, "testsets/Kodak24")),
    DatasetSpec("McMaster", "test", "18 colour 500x500 crops (demosaicking / colour denoising)", 18,
                "research use with citation (Zhang, Wu, Buades & Li, J. Electronic Imaging 2011)",
                "https://www4.comp.polyu.edu.hk/~cslzhang/CDM_Dataset.htm", github_archive(*FFDNET, "testsets/McMaster")),
    DatasetSpec("classic5", "test", "5 gray 512x512 classics (deJPEG); BMP stored as PNG", 5, CLASSIC_LICENCE,
                "as distributed with DnCNN (Zhang et al., TIP 2017)", github_archive(*DNCNN, "testsets/classic5")),
    DatasetSpec("Set12", "test", "12 gray classics (gray denoising)", 12, CLASSIC_LICENCE,
                "as distributed with DnCNN / FFDNet (Zhang et al.)", github_archive(*FFDNET, "testsets/Set12")),
    DatasetSpec("BSD68", "test", "the gray BSD68 (test001..test068; Roth & Black's Fields of Experts selection)", 68, BSDS_LICENCE,
                BSDS_HOME, github_archive(*FFDNET, "testsets/BSD68")),
    DatasetSpec("B100", "test", "BSDS500 val = BSD300 test = B100 / BSD100, original JPGs", 100, BSDS_LICENCE, BSDS_HOME,
                github_archive(*BSDS_SNAPSHOT, f"{BSDS_IMAGES}/val")),
    DatasetSpec("CBSD432", "train", "BSDS500 train + test + val minus CBSD68: colour training set of FFDNet-style denoisers", 432,
                BSDS_LICENCE, BSDS_HOME,
                github_archive(*BSDS_SNAPSHOT, f"{BSDS_IMAGES}/train", f"{BSDS_IMAGES}/test", f"{BSDS_IMAGES}/val")),
    DatasetSpec("BSD400", "train", "DnCNN's Train400: 400 gray 180x180 BSDS crops", 400, BSDS_LICENCE, BSDS_HOME,
                github_archive(*DNCNN, "TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400")),
    DatasetSpec("DIV2K_train_HR", "train", "DIV2K training HR images 0001-0800 (the paper's training set)", 800, DIV2K_LICENCE,
                DIV2K_HOME, Source(DIV2K_BASE + "DIV2K_train_HR.zip", ("DIV2K_train_HR",)),
                names=tuple(f"{i:04d}.png" for i in range(1, 801)), lazy=True),
    DatasetSpec("DIV2K_valid_HR", "test", "DIV2K validation HR images 0801-0900", 100, DIV2K_LICENCE, DIV2K_HOME,
                Source(DIV2K_BASE + "DIV2K_valid_HR.zip", ("DIV2K_valid_HR",)),
                names=tuple(f"{i:04d}.png" for i in range(801, 901)), lazy=True),
    DatasetSpec("DIV2K-sub", "train", "DIV2K_train_HR cut into 480x480 sub-images every 240 px (official HyperRes / AdaFM scripts)",
                None, DIV2K_LICENCE, DIV2K_HOME, None, lazy=True, derived_from="DIV2K_train_HR"),
):
    register_dataset(_spec)


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise HyperbenchError(f"unknown dataset {name!r}", did_you_mean(name, DATASETS))
    return DATASETS[name]
