import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Ajv, type ValidateFunction } from 'ajv';
import { RUN_CONFIG_SCHEMA, SPEC_SCHEMA } from './schema.js';

/** The schemas bnx validates with, by validator name. */
export const VALIDATED_SCHEMAS = { specShape: SPEC_SCHEMA, runConfig: RUN_CONFIG_SCHEMA } as const;
export type Validators = Record<keyof typeof VALIDATED_SCHEMAS, ValidateFunction>;
/** Every error, not the first: load.ts picks the most telling one. */
export const VALIDATOR_OPTIONS = { allErrors: true, strict: false } as const;

/** Identifies the schemas and options a precompiled validator was made from. */
export function schemaFingerprint(): string {
  return createHash('sha256')
    .update(JSON.stringify([VALIDATOR_OPTIONS, VALIDATED_SCHEMAS]))
    .digest('hex');
}

let validators: Validators | null = null;

/**
 * The spec validators: ajv's standalone code precompiled by `npm run build`
 * (scripts/build-validators.mjs) when it was made from these very schemas, else compiled here,
 * which takes about 0.2 s of every `bnx plan` or `bnx run`.
 */
export function specValidators(): Validators {
  if (validators) return validators;
  try {
    const built = createRequire(import.meta.url)('./validators.cjs') as Validators & { fingerprint: string };
    if (built.fingerprint === schemaFingerprint()) return (validators = built);
  } catch {
    // not built: compile below
  }
  const ajv = new Ajv(VALIDATOR_OPTIONS);
  return (validators = {
    specShape: ajv.compile(VALIDATED_SCHEMAS.specShape),
    runConfig: ajv.compile(VALIDATED_SCHEMAS.runConfig),
  });
}
