#!/usr/bin/env bash
# Installs Triton's C++ load generator `perf_analyzer` into a folder, for the benchmarks and for
# the tests that drive the server with it (`make perf-analyzer`; a copy of the team's shared tool).
# The `perf-analyzer` package on PyPI is an empty placeholder; the real binary ships inside the
# tritonclient 2.41.0 manylinux wheel. It needs libb64 (Debian) and libcudart.so.12 (from the
# nvidia-cuda-runtime-cu12 wheel; loaded even on a CPU-only machine).
# Usage: get-perf-analyzer.sh [DEST]   (default: ./.perf_analyzer) -> DEST/perf_analyzer wrapper
set -euo pipefail
dest=$(realpath -m "${1:-.perf_analyzer}")
if [[ -x $dest/perf_analyzer ]] && "$dest/perf_analyzer" --version >/dev/null 2>&1; then
  echo "$dest/perf_analyzer"; exit 0
fi
mkdir -p "$dest/lib" "$dest/dl"
if ! ldconfig -p | grep -q libb64.so.0d; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq libb64-0d; } >/dev/null
fi
py=${PYTHON:-python3}
"$py" -m pip download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
  -d "$dest/dl" 'tritonclient==2.41.0'
"$py" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 -d "$dest/dl" 'nvidia-cuda-runtime-cu12==12.*'
"$py" - "$dest" <<'PY'
import glob, os, sys, zipfile
dest = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{dest}/dl/tritonclient-2.41.0-*.whl")[0]) as z:
    name = next(n for n in z.namelist() if n.endswith("/bin/perf_analyzer"))
    open(f"{dest}/lib/perf_analyzer.bin", "wb").write(z.read(name))
with zipfile.ZipFile(glob.glob(f"{dest}/dl/nvidia_cuda_runtime_cu12-*.whl")[0]) as z:
    name = next(n for n in z.namelist() if n.endswith("lib/libcudart.so.12"))
    open(f"{dest}/lib/libcudart.so.12", "wb").write(z.read(name))
os.chmod(f"{dest}/lib/perf_analyzer.bin", 0o755)
PY
cat > "$dest/perf_analyzer" <<WRAP
#!/usr/bin/env bash
LD_LIBRARY_PATH="$dest/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dest/lib/perf_analyzer.bin" "\$@"
WRAP
chmod +x "$dest/perf_analyzer"
rm -rf "$dest/dl"
"$dest/perf_analyzer" --version >/dev/null 2>&1 || { echo "perf_analyzer does not run" >&2; exit 1; }
echo "$dest/perf_analyzer"
