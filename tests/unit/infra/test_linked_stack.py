"""`kinfer up --regions` without starting anything: each region's ports and folder, its
topics, and MirrorMaker 2's properties."""

from __future__ import annotations

from pathlib import Path

from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.local import topic_layout
from kinfer.infra.stack.mirror import MirrorConfig, mirror_properties
from kinfer.schemas import TopicNames

REGIONS = ["us-west", "eu-central", "ap-southeast"]


def test_each_region_has_its_own_ports_and_folder_and_shares_jars_and_models(tmp_path: Path) -> None:
    eu = KinferSettings(
        state_dir=tmp_path,
        clusters=REGIONS,
        region="eu-central",
        kafka_port=30000,
        kafka_controller_port=30001,
        redis_port=31000,
    )
    assert eu.bootstrap == "127.0.0.1:30020" and eu.redis.startswith("redis://127.0.0.1:31001/")
    assert eu.state_dir == tmp_path / "regions" / "eu-central" and eu.state_root == tmp_path
    assert eu.model_root == tmp_path / "models" and eu.peers == ("us-west", "ap-southeast")
    ap = eu.in_region("ap-southeast")
    assert ap.bootstrap == "127.0.0.1:30040" and ap.in_region("us-west").bootstrap == "127.0.0.1:30000"
    assert eu.worker_config().peer_regions == ("us-west", "ap-southeast")
    assert eu.client_config().reply_topics == [
        "kinfer.replies",
        "us-west.kinfer.to-eu-central.kinfer.replies",
        "ap-southeast.kinfer.to-eu-central.kinfer.replies",
    ]


def test_the_linked_regions_are_kept_for_later_commands(tmp_path: Path) -> None:
    (tmp_path / "regions.json").write_text('["us-west", "eu-central"]')
    settings = KinferSettings(state_dir=tmp_path, region="eu-central")
    assert settings.linked and settings.hub == "us-west"
    assert set(settings.admission_config().region_weights) == {"us-west", "eu-central"}


def test_a_cluster_holds_return_topics_and_mirrored_copies_with_the_partitions_answers_name(
    tmp_path: Path,
) -> None:
    eu = KinferSettings(state_dir=tmp_path, clusters=REGIONS, region="eu-central", reply_partitions=8)
    specs = {s.name: s.partitions for s in topic_layout(eu).specs()}
    assert specs["kinfer.to-us-west.kinfer.replies"] == 8
    assert specs["us-west.kinfer.to-eu-central.kinfer.replies"] == 8
    assert specs["us-west.kinfer.dispatch.eu-central"] == specs["kinfer.dispatch.eu-central"]
    assert "kinfer.to-eu-central.kinfer.replies" not in specs  # never a return topic to itself


def test_each_flow_carries_only_what_its_target_is_owed_exactly_once(tmp_path: Path) -> None:
    config = MirrorConfig({"us-west": "h:1", "eu-central": "h:2"}, TopicNames("kinfer"), tmp_path, tmp_path)
    text = mirror_properties(config)
    # Java properties read a doubled backslash as one: the regex then has "\." (a dot).
    dispatch, returns = r"kinfer\\.dispatch\\.eu\\-central", r"kinfer\\.to\\-eu\\-central\\..*"
    assert f"us-west->eu-central.topics = {dispatch}, {returns}" in text
    assert "eu-central.exactly.once.source.support = enabled" in text
    assert "us-west.consumer.isolation.level = read_committed" in text


def test_linked_regions_on_external_or_secured_services_are_refused_clearly(tmp_path: Path) -> None:
    import pytest

    from kinfer.infra.errors import StackError
    from kinfer.infra.stack.regions import link

    for settings in (
        KinferSettings(state_dir=tmp_path, bootstrap_servers="kafka:9092"),
        KinferSettings(state_dir=tmp_path, redis_url="redis://r:6379/0"),
        KinferSettings(state_dir=tmp_path / "s", secure=True),
    ):
        with pytest.raises(StackError, match="neither secured nor on external services"):
            link(settings, REGIONS)


def test_a_region_outside_the_linked_ones_is_a_settings_error(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match="not one of the linked regions"):
        KinferSettings(state_dir=tmp_path, clusters=["us-west", "eu-central"], region="ap-southeast")
