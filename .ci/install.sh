#!/bin/sh
# Makes .venv with leadflow installed from this folder (editable), plus any extra named:
#   .ci/install.sh        what the demo needs          .ci/install.sh test   and what the tests need
# Python 3.11 to 3.13: PYTHON=python3.13 .ci/install.sh picks the interpreter (default python3), and
# VENV=DIR the folder (default .venv).
#
# Why a script: durable-rules 2.0.28 is a source-only release that calls PyEval_CallObject, which
# Python 3.13 removed. PyObject_CallObject is the same call, so defining one as the other makes it
# build and import on 3.13 (on 3.11 and 3.12 the headers' own definition wins). It is built on its
# own, without pip's wheel cache, so a wheel built earlier without the define is never reused; a
# working copy already in the environment is kept.
set -eu
cd "$(dirname "$0")/.."  # the project folder: this script lives in its .ci/
python=${PYTHON:-python3}
venv=${VENV:-.venv}
"$python" -m venv "$venv"
if ! "$venv/bin/python" -c "import durable.lang" 2>/dev/null; then
    pin=$(sed -n 's/^ *"\(durable-rules==[^"]*\)".*/\1/p' pyproject.toml)
    CPPFLAGS="${CPPFLAGS:-} -DPyEval_CallObject=PyObject_CallObject" "$venv/bin/pip" install -q --no-cache-dir \
        --no-binary durable-rules --force-reinstall --no-deps "${pin:?no durable-rules pin in pyproject.toml}"
fi
"$venv/bin/pip" install -q -e ".${1:+[$1]}"
