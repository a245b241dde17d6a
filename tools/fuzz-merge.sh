#!/bin/sh
# Keep what the fuzzers found, minimised, in the tree: for each target,
# libFuzzer -merge picks the inputs that add coverage from the seeds
# (tests/fuzz/corpus/T/*, named by hand) and what fuzz-smoke and
# fuzz-long grew (build-fuzz/corpus-T); those that are not seeds go to
# tests/fuzz/corpus/T/found/, replacing what was there.
set -e
for t in "$@"; do
	seeds=tests/fuzz/corpus/$t
	merged=build-fuzz/merged-$t
	rm -rf "$merged" build-fuzz/merge-crash-$t-*
	mkdir -p "$merged" "build-fuzz/corpus-$t" "$seeds/found"
	build-fuzz/fuzz_$t -merge=1 -max_len=20000 \
	    -artifact_prefix="build-fuzz/merge-crash-$t-" "$merged" "$seeds" \
	    "build-fuzz/corpus-$t" >"build-fuzz/merge-$t.log" 2>&1 || {
		tail -20 "build-fuzz/merge-$t.log"; exit 1; }
	# libFuzzer names each input by its SHA-1: drop the seeds' copies.
	for f in "$seeds"/*; do
		[ -f "$f" ] || continue
		rm -f "$merged/$(sha1sum "$f" | cut -d' ' -f1)"
	done
	# An input that crashed is not merged: say so, it is a finding.
	if ls build-fuzz/merge-crash-$t-* >/dev/null 2>&1; then
		echo "fuzz_$t: inputs crashed during the merge:" \
		    build-fuzz/merge-crash-$t-*
		exit 1
	fi
	rm -f "$seeds"/found/*
	cp "$merged"/* "$seeds/found/" 2>/dev/null || true
	echo "fuzz_$t: $(ls "$seeds" | grep -vc '^found$') seeds," \
	    "$(ls "$seeds/found" | wc -l) found inputs kept"
done
