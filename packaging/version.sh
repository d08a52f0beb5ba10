#!/bin/sh
# Prints lvskit's version, from git describe, in a form that is both what
# `lvsd --version` says and a valid Debian version:
#   HEAD tagged v1.2.0                  1.2.0
#   5 commits after v1.2.0              1.2.0+git5.g56cc55e
#   no v* tag yet                       0.0.0+git412.g56cc55e (412 commits)
#   uncommitted changes                 ... with .dirty appended
# Outside a git checkout it prints 0.0.0+unknown.
set -eu
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo 0.0.0+unknown
	exit 0
fi
dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=.dirty
fi
if d=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.0-5-g56cc55e
	hash=${d##*-}
	rest=${d%-*}
	n=${rest##*-}
	tag=${rest%-*}
	tag=${tag#v}
	if [ "$n" = 0 ]; then
		echo "$tag${dirty:++git0$dirty}"
	else
		echo "$tag+git$n.$hash$dirty"
	fi
	exit 0
fi
echo "0.0.0+git$(git rev-list --count HEAD).g$(git rev-parse --short=7 HEAD)$dirty"
