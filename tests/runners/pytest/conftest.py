# A conftest at the suite's root: pytest's rootdir and the node ids are anchored here.
