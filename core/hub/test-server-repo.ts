/** The content model of the test Hub server: a folder on disk seen as a git repo with LFS files. */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

/** One file of a served repo, with the ids the Hub would report for it. */
export interface RepoFile {
  readonly path: string;
  readonly absPath: string;
  readonly size: number;
  /** git blob id (sha1 of `blob <size>\0` + content) of what git stores: the LFS pointer for LFS files. */
  readonly oid: string;
  /** For LFS files: sha256 of the content, the size, and the pointer file size. */
  readonly lfs?: { readonly oid: string; readonly size: number; readonly pointerSize: number };
}

/** A served repo: its files and the fake commit `main` points to. */
export interface ServedRepo {
  readonly id: string;
  readonly commit: string;
  readonly files: ReadonlyMap<string, RepoFile>;
}

const LFS_EXTENSIONS = /\.(safetensors|bin|pt|pth|ckpt|onnx|gguf|h5|msgpack|npz|npy|pkl|model|zip|gz|tar)$/;
const LFS_MIN_SIZE = 10 * 1024 * 1024;

function gitBlobOid(content: Uint8Array): string {
  return createHash('sha1').update(`blob ${content.byteLength}\0`).update(content).digest('hex');
}

/** The fixed fake commit hash of `main` in a served repo (sha1 of a fixed string + the repo id). */
export function fakeCommit(repoId: string): string {
  return createHash('sha1').update(`tuneforge-test-hub:${repoId}:main`).digest('hex');
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile() || e.isSymbolicLink()) out.push(p);
  }
  return out;
}

/** Reads a folder and computes the git/LFS ids of its files (hidden files are skipped). */
export async function loadRepo(id: string, folder: string): Promise<ServedRepo> {
  const files = new Map<string, RepoFile>();
  for (const abs of (await walk(folder)).sort()) {
    const content = new Uint8Array(await readFile(abs));
    const path = relative(folder, abs).split(sep).join('/');
    const isLfs = LFS_EXTENSIONS.test(path) || content.byteLength >= LFS_MIN_SIZE;
    if (!isLfs) {
      files.set(path, { path, absPath: abs, size: content.byteLength, oid: gitBlobOid(content) });
      continue;
    }
    const sha256 = createHash('sha256').update(content).digest('hex');
    const pointer = new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${content.byteLength}\n`);
    files.set(path, {
      path,
      absPath: abs,
      size: content.byteLength,
      oid: gitBlobOid(pointer),
      lfs: { oid: sha256, size: content.byteLength, pointerSize: pointer.byteLength },
    });
  }
  return { id, commit: fakeCommit(id), files };
}

/** The etag Python's huggingface_hub stores the blob under: sha256 for LFS files, the git blob id otherwise. */
export function blobEtag(f: RepoFile): string {
  return f.lfs?.oid ?? f.oid;
}

/** Directories implied by the file paths (for tree listings). */
export function directoriesOf(files: Iterable<string>): string[] {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs].sort();
}
