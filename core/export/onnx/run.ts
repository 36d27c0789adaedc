/**
 * `export --format onnx` for a run (its latest checkpoint, adapters merged exactly as the merged safetensors and GGUF
 * exports merge them) or for a model folder as it is.
 */
import { folderArchitecture } from '../architecture.ts';
import { loadModel } from '../../models/load.ts';
import type { Plugin } from '../../plugin/hooks.ts';
import type { TrainConfig } from '../../train/config.ts';
import { mergedWeights, unmergeable } from '../../train/finish.ts';
import { openRun } from '../../train/run.ts';
import { writeTransformersJsFolder, type OnnxExportResult, type OnnxFolderOptions } from './folder.ts';
import { checkTransformersJsArchitecture, OnnxUnsupportedError } from './support.ts';

/** The merged model of a run's latest checkpoint; plugins that cannot be merged are refused before anything loads. */
export async function exportRunOnnx(cfg: TrainConfig, plugins: readonly Plugin[], out: string, log: (l: string) => void, opts: OnnxFolderOptions = {}): Promise<OnnxExportResult> {
  const cannot = unmergeable(plugins);
  if (cannot.length) {
    throw new OnnxUnsupportedError(
      `--format onnx: ${cannot.join(', ')} ${cannot.length === 1 ? 'adds' : 'add'} computation that cannot be folded into the base weights, ` +
        'and the exported decoder is the base architecture, so it would silently drop what was trained; export the adapter instead: ' +
        'tuneforge export --config <file> (without --format) writes it as a PEFT folder',
    );
  }
  await precheck(cfg.model);
  const { m, trained, step } = await openRun(cfg, plugins, log);
  const merged = mergedWeights(m, trained);
  log(`writing the merged model of step ${step} for transformers.js`);
  return writeTransformersJsFolder(out, m.ctx.model.config, merged, m.dir, opts);
}

/** A model folder (or Hub id) as it is. */
export async function exportModelOnnx(source: string, out: string, opts: OnnxFolderOptions = {}): Promise<OnnxExportResult> {
  await precheck(source);
  const { dir, config, weights } = await loadModel(source);
  return writeTransformersJsFolder(out, config, weights, dir, opts);
}

/**
 * Refuses an architecture before the weights load, with this export's reason (the model loader would refuse an
 * unknown one for training reasons). A Hub id is checked after loading instead, by the writer.
 */
async function precheck(source: string): Promise<void> {
  const found = await folderArchitecture(source);
  if (found) checkTransformersJsArchitecture(found.arch, found.where);
}
