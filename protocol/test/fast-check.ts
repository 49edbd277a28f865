// One seed for every fast-check property, so that a property test fails or passes the same way on
// every run (CI included); FC_SEED=<integer> explores other inputs. It sits in protocol/test/ so that
// the tests of every folder may import it (protocol/ imports nothing from elsewhere).

import fc from 'fast-check';

/** Fixed so CI is deterministic; any integer would do. */
export const DEFAULT_FC_SEED = 0x5eed_d1b;

/** The seed: FC_SEED when it is an integer, else the fixed default. A bad FC_SEED is our own misuse. */
export function fastCheckSeed(env: NodeJS.ProcessEnv = process.env): number {
  const text = env['FC_SEED'];
  if (text === undefined || text === '') return DEFAULT_FC_SEED;
  if (!/^-?\d{1,10}$/.test(text) || !Number.isSafeInteger(Number(text))) throw new TypeError('FC_SEED must be an integer');
  return Number(text) | 0;
}

const seed = fastCheckSeed();
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });
if (seed !== DEFAULT_FC_SEED) console.log(`fast-check seed ${seed} (from FC_SEED)`);

export { fc };
