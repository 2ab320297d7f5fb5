"""stream=true through the whole pipeline: chunks as produced, then the final result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.producers import AsyncClient
from kinfer.schemas import InferenceResult, SamplingParams, TokenChunk
from tests.integration.conftest import Pipeline


def test_stream_yields_chunks_then_the_result(make_pipeline: Callable[[str], Pipeline], prefix: str) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker")
    pipeline.wait_serving()
    sampling = SamplingParams(max_tokens=48)

    async def scenario() -> tuple[list[TokenChunk], InferenceResult]:
        settings = pipeline.services.settings(prefix)
        async with AsyncClient(settings.client_config(timeout_s=60)) as client:
            chunks: list[TokenChunk] = []
            final: InferenceResult | None = None
            async for item in client.stream("Once upon a time", sampling=sampling):
                if isinstance(item, TokenChunk):
                    assert final is None, "a chunk after the result"
                    chunks.append(item)
                else:
                    final = item
            assert final is not None
            # Plain calls on the same client are unaffected by streaming ones.
            plain = await client.generate("Once upon a time", sampling=sampling)
            assert plain.text == final.text
            return chunks, final

    chunks, final = asyncio.run(scenario())
    expected = load_runner("kinfer-tiny", device="cpu").generate(
        [GenerationInput("Once upon a time", sampling)]
    )[0]
    assert final.text == expected.text
    assert "".join(c.text for c in chunks) == final.text
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len(chunks) > 5
