#!/usr/bin/env bash
# Build the tf2_msgs interface package (TFMessage) into a pip-only ROS 2 venv.
#
# tf2_msgs is not published on PyPI; its generators are. We fix the build-machine Python
# paths that the message wheels export in their CMake files, then configure, build and
# install tools/tf2_msgs with plain cmake. Idempotent: does nothing when tf2_msgs imports.
#
# usage: tools/build_tf2_msgs.sh VENV
set -euo pipefail
venv=$(cd "${1:?usage: build_tf2_msgs.sh VENV}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
py="$venv/bin/python"

export AMENT_PREFIX_PATH="$venv"
if "$py" -c 'import tf2_msgs.msg' 2>/dev/null; then
  echo "tf2_msgs: already installed in $venv"
  exit 0
fi

echo "tf2_msgs: rewriting build-machine include paths in exported CMake files"
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$py" -c 'import numpy; print(numpy.get_include())')
grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null |
  while read -r f; do
    sed -i \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
  done

build=$(mktemp -d "${TMPDIR:-/tmp}/tf2_msgs_build.XXXXXX")
trap 'rm -rf "$build"' EXIT
echo "tf2_msgs: configuring and building in $build (about 30 s)"
export PATH="$venv/bin:$PATH"
cmake -S "$here/tf2_msgs" -B "$build" \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
  > "$build/cmake.log" 2>&1 || { cat "$build/cmake.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$build/build.log" 2>&1 ||
  { tail -50 "$build/build.log"; exit 1; }
cmake --install "$build" > "$build/install.log" 2>&1 || { cat "$build/install.log"; exit 1; }

# ament_cmake installs Python packages under lib/pythonX.Y/site-packages of the prefix,
# which is the venv's own site-packages: check the import works.
"$py" -c 'import tf2_msgs.msg; print("tf2_msgs: installed", tf2_msgs.msg.TFMessage)'
