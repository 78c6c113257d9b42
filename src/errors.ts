/**
 * Errors with a stable code. The CLI prints `message` (which says what to do); logs carry `code`.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'PEER_AUTH_FAILED'
  | 'ADMIN_AUTH_FAILED'
  | 'PEER_UNREACHABLE'
  | 'WITNESS_UNREACHABLE'
  | 'EPOCH_STORE_CORRUPT'
  | 'SWITCHOVER_REFUSED'
  | 'FAILBACK_REFUSED'
  | 'VIP_FAILED'
  | 'VIP_ADDRESS_IN_USE'
  | 'VIP_NOT_PERMITTED'
  | 'SERVICE_FAILED'
  | 'CLONE_TARGET_NOT_EMPTY'
  | 'CLONE_FAILED'
  | 'DB_AUTH_FAILED'
  | 'DB_FAILED'
  | 'TIMELINE_DIVERGED'
  | 'REPO_AUTH_FAILED'
  | 'REPO_BUCKET_MISSING'
  | 'REPO_DELETE_GUARD'
  | 'REPO_VERIFY_FAILED'
  | 'REPO_FAILED'
  | 'FILES_PATH_OUTSIDE_TREE'
  | 'FILES_FAILED'
  | 'NOTIFY_FAILED'
  | 'USAGE';

export class HaError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'HaError';
  }
}

export function errorMessage(err: unknown): string {
  // Promise.any over several paths: the individual reasons say what went wrong.
  if (err instanceof AggregateError && err.errors.length) return [...new Set(err.errors.map(errorMessage))].join('; ');
  if (err instanceof Error) return err.message;
  return String(err);
}
