export { planMemory, createPlanner, type MemoryPlan, type PlanItem, type Planner, type PlannerOptions, type PlanOverrides } from './plan.ts';
export { profileRunData, type DataProfile, type ProfileOptions } from './data-profile.ts';
export { fitToBudget, parseBudget, BudgetError } from './fit.ts';
export { formatPlan } from './format.ts';
export { simulateLiveness, type LivenessReport } from './liveness.ts';
export { foldedConstantBytes } from './folded-constants.ts';
export { peakRssBytes, rssBytes } from './measure.ts';
export { RUNTIME_BASE, SESSION_BYTES_PER_EQN } from './constants.ts';
export { collectGarbage, fixMmapThreshold, trimMalloc, DEFAULT_MMAP_THRESHOLD } from './allocator.ts';
