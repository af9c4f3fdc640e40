from pipeline.core.versions import earlier, sort_versions


def test_versions_sort_naturally():
    assert sort_versions(["1.10.0", "1.9.0", "1.9.0-beta", "2", "1.9.0+hotfix1", "1.9.0+hotfix10", "1.9.0+hotfix2"]) == \
        ["1.9.0", "1.9.0+hotfix1", "1.9.0+hotfix2", "1.9.0+hotfix10", "1.9.0-beta", "1.10.0", "2"]
    assert earlier(["1.10.0", "1.2.0", "1.9.0", "2.0"], "1.10.0") == ["1.2.0", "1.9.0"]
