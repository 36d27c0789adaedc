#!/usr/bin/env bash
# Packs what `bun run bench:gpu` (and `tuneforge sidecar`) need on a Linux x64 GPU machine that reaches no registry:
# Bun, the production npm packages (onnxruntime-node with its Linux x64 library only; onnxruntime-web, which only
# browsers use, left out), the Vulkan loader for the WebGPU provider, and the stories260k tokenizer and TinyStories
# text the benchmark trains on. Run it in an installed checkout (npm ci) on a Debian or Ubuntu machine; it writes
# .offline/ (about 52 MB). Copy the checkout with .offline/ to the GPU machine and run benchmarks/offline/run.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=.offline
SHARED=${TUNEFORGE_SHARED:-../shared}
[ -x node_modules/bun/bin/bun.exe ] || { echo "no node_modules/bun: run npm ci first" >&2; exit 1; }
[ -f "$SHARED/models/stories260k/tokenizer.json" ] || { echo "no stories260k under $SHARED (set TUNEFORGE_SHARED)" >&2; exit 1; }
rm -rf "$DEST" && mkdir -p "$DEST/stage/node_modules" "$DEST/gl"
# The production dependencies and everything they depend on, resolved as Node resolves them.
node -e '
  const fs = require("fs"), path = require("path");
  const roots = Object.keys(require("./package.json").dependencies).filter((d) => d !== "onnxruntime-web");
  const seen = new Set(), todo = roots.map((r) => path.join("node_modules", r));
  while (todo.length) {
    const dir = todo.pop();
    if (seen.has(dir)) continue;
    seen.add(dir);
    const pj = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    for (const dep of Object.keys({ ...pj.dependencies, ...pj.optionalDependencies })) {
      for (let base = dir; ; base = path.dirname(base)) {
        const c = path.join(base, "node_modules", dep);
        if (fs.existsSync(c)) { todo.push(c); break; }
        if (base === "." || base === "/") break;
      }
    }
  }
  console.log([...seen].join("\n"));
' > "$DEST/packages.txt"
while read -r dir; do
  mkdir -p "$DEST/stage/$(dirname "$dir")"
  if [ "$dir" = node_modules/onnxruntime-node ]; then
    mkdir -p "$DEST/stage/$dir/bin/napi-v6/linux"
    cp -r "$dir/package.json" "$dir/dist" "$DEST/stage/$dir/"
    cp -r "$dir/bin/napi-v6/linux/x64" "$DEST/stage/$dir/bin/napi-v6/linux/"
  else
    cp -r "$dir" "$DEST/stage/$dir"
  fi
done < "$DEST/packages.txt"
tar -C "$DEST/stage" -cf - node_modules | xz -T0 -6 > "$DEST/node_modules.tar.xz"
rm -rf "$DEST/stage"
xz -T0 -9 -c node_modules/bun/bin/bun.exe > "$DEST/bun.xz"
mkdir -p "$DEST/shared/models/stories260k" "$DEST/shared/data/tinystories"
cp "$SHARED"/models/stories260k/*.json "$SHARED/models/stories260k/model.safetensors" "$DEST/shared/models/stories260k/"
xz -c "$SHARED/data/tinystories/tiny_stories.txt" > "$DEST/shared/data/tinystories/tiny_stories.txt.xz"
# The Vulkan loader and GL dispatch libraries (NVIDIA's Vulkan driver is in its GL library), amd64, unpacked there.
if command -v apt-get >/dev/null; then
  (cd "$DEST/gl" && apt-get download libvulkan1:amd64 libglvnd0:amd64 libegl1:amd64 libgl1:amd64 libglx0:amd64 libopengl0:amd64 libgles2:amd64 >/dev/null 2>&1) \
    || echo "apt-get download failed: the GPU machine then needs its own libvulkan1" >&2
fi
du -sh "$DEST" "$DEST"/*
