/** Parameter names: tuneforge's (Hugging Face module paths) and PEFT's keys in adapter_model.safetensors. */
export const loraA = (module: string) => `${module}.lora_A.weight`;
export const loraB = (module: string) => `${module}.lora_B.weight`;
export const magnitude = (module: string) => `${module}.lora_magnitude_vector`;

const PEFT_PREFIX = 'base_model.model.';
/** PEFT's key of one of our parameter names (PEFT saves the magnitude without `.weight`). */
export const peftKey = (name: string) => `${PEFT_PREFIX}${name}`;
/** Our parameter name from a PEFT key; older PEFT versions wrote the magnitude with a `.weight` suffix. */
export const fromPeftKey = (key: string) => key.replace(PEFT_PREFIX, '').replace(/\.lora_magnitude_vector\.weight$/, '.lora_magnitude_vector');
