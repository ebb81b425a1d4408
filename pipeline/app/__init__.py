"""Use cases, without click: a release (build-push, promote), its multi-platform steps, the registry chores,
and the report a run gives. They drive engine/ and registry/ with what model/ decided."""
