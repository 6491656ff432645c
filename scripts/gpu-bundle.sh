#!/usr/bin/env bash
# Packs into a folder at the repository's root (default .gpu/, ignored by git) what
# scripts/gpu-check.sh needs to run everything on a GPU machine that has CUDA, cmake and Python but
# no Node: the CUDA harnesses built here for sm_90, the addon built with CUDA (build/Release/gvpo.node
# is replaced by it), dist/, a Node binary and the test runner's modules (vitest, fast-check, tsx
# and what they need; about 45 MB in all with xz), and, with LIGER_SRC set, Liger-Kernel's source
# (the folder holding liger_kernel; brought for the run, never part of this repository). Build
# here, where nvcc is; run there from the repository's root:
#   bash scripts/gpu-bundle.sh [folder]
#   bash <folder>/run.sh        (on the GPU machine: unpacks, then gpu-check.sh with every option)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-.gpu}
mkdir -p "$D/bin"
npm run -s build
node scripts/build-native.mjs --cuda
cp build/Release/gvpo.node "$D/"
cmake -S . -B build-gpu -DGVPO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-gpu -j "$(nproc)" --target gvpo_test_cuda gvpo_bench_cuda >/dev/null
cp build-gpu/gvpo_test_cuda build-gpu/gvpo_bench_cuda "$D/bin/"
xz -T0 -6 -c "$(command -v node)" >"$D/node.xz"
# The test runner's modules: the packages these need, transitively, from the flat node_modules.
node -e '
  const fs = require("fs"), path = require("path");
  const seen = new Set(), todo = ["vitest", "fast-check", "node-addon-api", "tsx"];
  while (todo.length) {
    const n = todo.pop(), p = path.join("node_modules", n, "package.json");
    if (seen.has(n) || !fs.existsSync(p)) continue;
    seen.add(n);
    const j = JSON.parse(fs.readFileSync(p, "utf8"));
    todo.push(...Object.keys({ ...j.dependencies, ...j.optionalDependencies, ...j.peerDependencies }));
  }
  for (const n of seen) console.log("node_modules/" + n);
  console.log("node_modules/.bin/vitest");' | tar -cf - -T - | xz -T0 -6 >"$D/nm.tar.xz"
tar -cJf "$D/dist.tar.xz" dist
liger=
if [ -n "${LIGER_SRC:-}" ]; then
  tar -C "$LIGER_SRC/.." -cJf "$D/liger.tar.xz" "$(basename "$LIGER_SRC")/liger_kernel"
  liger="LIGER_SRC=/tmp/liger/$(basename "$LIGER_SRC")"
fi
cat >"$D/run.sh" <<EOF
#!/usr/bin/env bash
# Made by scripts/gpu-bundle.sh: unpacks the bundle beside the repository, then runs
# scripts/gpu-check.sh with the prebuilt harnesses, the Node suite, the profiler and memcheck.
set -uo pipefail
cd "\$(dirname "\$0")/.."
B=$D
xz -dc "\$B/node.xz" >/tmp/node && chmod +x /tmp/node && mkdir -p /tmp/nb && ln -sf /tmp/node /tmp/nb/node
export PATH=/tmp/nb:\$PATH
tar -xJf "\$B/nm.tar.xz" && tar -xJf "\$B/dist.tar.xz"
[ -f "\$B/liger.tar.xz" ] && mkdir -p /tmp/liger && tar -xJf "\$B/liger.tar.xz" -C /tmp/liger
mkdir -p build/Release && cp "\$B/gvpo.node" build/Release/
env GVPO_BUILD="\$B/bin" $liger GVPO_NODE_TESTS=1 GVPO_PROFILE=1 GVPO_SANITIZE=memcheck bash scripts/gpu-check.sh
EOF
chmod +x "$D/run.sh"
du -sh "$D"
