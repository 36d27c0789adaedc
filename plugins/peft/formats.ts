/** The PEFT adapter types this build reads, one format per technique (each in its plugin's folder). */
import { adaloraPeft } from '../adalora/peft.ts';
import { bottleneckPeft } from '../adapters/peft.ts';
import { loraPeft } from '../lora/peft.ts';
import { prefixPeft } from '../prefix/peft.ts';
import { promptPeft } from '../prompt/peft.ts';
import type { PeftFormat } from './format.ts';

export const PEFT_FORMATS: readonly PeftFormat[] = [loraPeft, adaloraPeft, prefixPeft, promptPeft, bottleneckPeft];
