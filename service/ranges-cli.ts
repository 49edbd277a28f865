// The operator's pool command (docs/service.md "Operating the pool"): adds, drains, removes and
// lists ranges through a running instance's admin routes, so the pool changes without downtime.
// With PostgreSQL any instance's admin route changes the one shared pool.
// Exit 0 done, 1 refused or unreachable, 2 usage.

import { parseArgs } from 'node:util';
import { parseCidr } from './cidr.js';

const USAGE = `usage: node --import tsx service/main.ts ranges COMMAND --admin URL
  ranges add CIDR [--exclude CIDR]...   add a range to the pool (its free addresses are handed out at once)
  ranges drain CIDR                     hand out no new address of the range; reservations run out
  ranges remove CIDR                    remove a range none of whose addresses is reserved or in quarantine
  ranges list                           every range with its free, reserved and quarantined counts
  --admin URL    a running instance's --admin-listen, e.g. http://127.0.0.1:8084  [DIP_SERVICE_ADMIN_URL]
  --json         print the admin route's JSON answer as it is
`;

interface RangeRow {
  cidr: string;
  draining: boolean;
  free: number;
  reserved: number;
  quarantined: number;
}

class UsageError extends Error {}

function describe(command: string, body: Record<string, unknown>): string {
  if (command === 'add') return `added ${String(body.cidr)}: ${String(body.added)} addresses\n`;
  if (command === 'drain') return `draining ${String(body.cidr)}\n`;
  if (command === 'remove') return `removed ${String(body.cidr)}\n`;
  const pool = body.pool as Record<string, number>;
  const lines = (body.ranges as RangeRow[]).map(
    (r) => `${r.cidr.padEnd(24)} free ${r.free}  reserved ${r.reserved}  quarantined ${r.quarantined}${r.draining ? '  draining' : ''}`,
  );
  lines.push(`pool: free ${pool.free}  reserved ${pool.reserved}  quarantined ${pool.quarantined}  draining ${pool.draining}`);
  return `${lines.join('\n')}\n`;
}

export async function runRangesCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  let command: string;
  let request: { method: string; path: string; body?: unknown };
  let admin: URL;
  let json: boolean;
  try {
    const { values, positionals } = (() => {
      try {
        return parseArgs({
          args: [...argv],
          allowPositionals: true,
          options: { admin: { type: 'string' }, exclude: { type: 'string', multiple: true }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
        });
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    })();
    if (values.help === true) {
      out(USAGE);
      return 0;
    }
    command = positionals[0] ?? '';
    const cidr = positionals[1];
    const wantsCidr = command === 'add' || command === 'drain' || command === 'remove';
    if (!['add', 'drain', 'remove', 'list'].includes(command)) throw new UsageError('give a command: add, drain, remove or list');
    if (positionals.length !== (wantsCidr ? 2 : 1)) throw new UsageError(wantsCidr ? `ranges ${command} takes one CIDR` : 'ranges list takes no argument');
    for (const block of [...(cidr === undefined ? [] : [cidr]), ...(values.exclude ?? [])]) {
      if (parseCidr(block) === null) throw new UsageError(`${block} is not a CIDR block in canonical form with its host bits zero`);
    }
    if (values.exclude !== undefined && command !== 'add') throw new UsageError('--exclude goes with ranges add');
    const adminText = values.admin ?? env.DIP_SERVICE_ADMIN_URL;
    if (adminText === undefined) throw new UsageError('--admin URL is required');
    try {
      admin = new URL(adminText);
    } catch {
      throw new UsageError('--admin must be a URL such as http://127.0.0.1:8084');
    }
    json = values.json === true;
    request =
      command === 'add' ? { method: 'POST', path: '/admin/ranges', body: { cidr, exclude: values.exclude ?? [] } }
      : command === 'drain' ? { method: 'POST', path: '/admin/ranges/drain', body: { cidr } }
      : command === 'remove' ? { method: 'DELETE', path: '/admin/ranges', body: { cidr } }
      : { method: 'GET', path: '/admin/pool' };
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`ranges: ${error.message}\n${USAGE}`);
    return 2;
  }
  let status: number;
  let body: Record<string, unknown>;
  try {
    const response = await fetch(new URL(request.path, admin), {
      method: request.method,
      ...(request.body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(request.body) }),
      signal: AbortSignal.timeout(30_000),
    });
    status = response.status;
    body = (await response.json()) as Record<string, unknown>;
  } catch {
    err(`ranges: the admin route at ${admin.origin} does not answer (is the service running with --admin-listen?)\n`);
    return 1;
  }
  if (status !== 200) {
    const error = (body.error ?? {}) as { code?: unknown; message?: unknown };
    if (json) out(`${JSON.stringify(body)}\n`);
    err(`ranges: ${String(error.code)}: ${String(error.message)}\n`);
    return 1;
  }
  out(json ? `${JSON.stringify(body)}\n` : describe(command, body));
  return 0;
}
