/**
 * Commands whose modules pull in large libraries (the S3 SDK, the demo fixtures, node-forge). The CLI
 * loads one only when it is the command asked for; otherwise it registers a stub with the same name,
 * description and usage, so `--help` and the usage after an unknown command still list it.
 * test/unit/cli-lazy-commands.test.ts checks that each stub matches its module's command.
 */
import { Option, type Command } from 'commander';

export interface LazyCommand {
  name: string;
  description: string;
  /** Whether the real command has options (its help line reads `name [options]`). */
  hasOptions: boolean;
  register: () => Promise<(program: Command) => void>;
}

export const LAZY_COMMANDS: readonly LazyCommand[] = [
  {
    name: 'availability',
    description: 'availability and yearly downtime of a single head node vs an active/standby pair (CTMC model)',
    hasOptions: true,
    register: async () => (await import('./availability.js')).registerAvailabilityCommand,
  },
  {
    name: 'repo',
    description: 'image repository (Cumulus) replication',
    hasOptions: false,
    register: async () => (await import('./repo.js')).registerRepoCommands,
  },
  {
    name: 'chaos',
    description: 'fault-injection harness: the demo stack under load, seeded random faults, an independent checker of acknowledged data and primaries',
    hasOptions: true,
    register: async () => (await import('./chaos/run.js')).registerChaosCommand,
  },
  {
    name: 'certs',
    description: 'create a private CA and node certificates for `tls: { cert, key, ca }` (quick start)',
    hasOptions: false,
    register: async () => (await import('./certs.js')).registerCertsCommand,
  },
];

/** The command a command line asks for: `nimbus-ha NAME ...` or `nimbus-ha help NAME`. */
export function requestedCommand(argv: readonly string[]): string | undefined {
  const first = argv[2];
  return first === 'help' ? argv[3] : first;
}

/** Registers the real module of the command asked for, and stubs for the others. */
export async function registerLazyCommands(program: Command, argv: readonly string[]): Promise<void> {
  const asked = requestedCommand(argv);
  for (const c of LAZY_COMMANDS) {
    if (c.name === asked) {
      (await c.register())(program);
      continue;
    }
    const stub = program.command(c.name).description(c.description);
    if (c.hasOptions) stub.addOption(new Option('--stub').hideHelp());
  }
}
