/**
 * `tuneforge/testing`: the kit a plugin author runs in their own repository, with any test runner (each check
 * throws a KitError saying what differed, or returns its figures):
 *
 * ```ts
 * import { expectGradients, expectResumeExact, expectExportRoundTrip, expectPlanHolds, checkComposition } from 'tuneforge/testing';
 * await expectGradients({ plugins: () => [myPlugin({ r: 4 })] });          // finite differences on a tiny random Llama
 * await expectResumeExact({ plugins: () => [myPlugin({ r: 4 })] });        // kill and resume: identical weights
 * await expectExportRoundTrip({ plugins: () => [myPlugin({ r: 4 })] });    // merged export = the plugin on the base
 * await expectPlanHolds({ plugins: [{ name: 'my-plugin', options: { r: 4 } }] }); // planner vs measured peak
 * await checkComposition({ plugins: () => [myPlugin({ r: 4 })] });         // with LoRA, NF4 and zeroth-order
 * ```
 */
export { KitError } from './errors.ts';
export { writeTinyLlama, writeTinyDataset, tinyLlamaConfig, type TinyLlamaOptions } from './tiny-model.ts';
export { checkGradients, expectGradients, type GradientCheckOptions, type GradientCheckReport, type GradientCheckRow } from './gradcheck.ts';
export { bitDifferences, expectResumeExact, type ResumeCheckOptions } from './resume-check.ts';
export { expectExportRoundTrip, type ExportCheckOptions, type ExportCheckReport } from './export-check.ts';
export { expectPlanHolds, type PlanCheckOptions, type PlanCheckReport, type PluginReference } from './plan-check.ts';
export { checkComposition, type CompositionCheckOptions, type CompositionResult, type Partner } from './composition-check.ts';
export { kitLogits, maxRelDiff } from './logits.ts';
export { kitConfig, kitModel } from './run-model.ts';
