/**
 * Errors with a stable code. The CLI prints `message` (which says what to do); logs carry `code`.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'PEER_AUTH_FAILED'
  | 'ADMIN_AUTH_FAILED'
  | 'PEER_UNREACHABLE'
  | 'PEER_INCOMPATIBLE'
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
  | 'NIMBUS_STATE_FAILED'
  | 'USAGE'
  // Answers of the HTTP API (docs/openapi.yaml, Error) beyond the ones above.
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'AUTH_RATE_LIMITED'
  | 'BAD_JSON'
  | 'BODY_TOO_LARGE'
  | 'BAD_REQUEST'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'REQUEST_REFUSED'
  | 'TOO_MANY_STREAMS'
  | 'INTERNAL';

/**
 * Every code with the HTTP status the API answers it with and whether the same request may succeed when
 * sent again unchanged (after a wait, or once the cluster has moved on): a client retries those, and
 * fixes the request or its credentials for the others.
 */
export const ERROR_INFO: Readonly<Record<ErrorCode, { httpStatus: number; retryable: boolean }>> = {
  CONFIG_INVALID: { httpStatus: 400, retryable: false },
  CONFIG_NOT_FOUND: { httpStatus: 400, retryable: false },
  PEER_AUTH_FAILED: { httpStatus: 401, retryable: false },
  ADMIN_AUTH_FAILED: { httpStatus: 401, retryable: false },
  PEER_UNREACHABLE: { httpStatus: 503, retryable: true },
  PEER_INCOMPATIBLE: { httpStatus: 400, retryable: false },
  WITNESS_UNREACHABLE: { httpStatus: 503, retryable: true },
  EPOCH_STORE_CORRUPT: { httpStatus: 500, retryable: false },
  SWITCHOVER_REFUSED: { httpStatus: 409, retryable: true },
  FAILBACK_REFUSED: { httpStatus: 409, retryable: true },
  VIP_FAILED: { httpStatus: 500, retryable: true },
  VIP_ADDRESS_IN_USE: { httpStatus: 409, retryable: true },
  VIP_NOT_PERMITTED: { httpStatus: 500, retryable: false },
  SERVICE_FAILED: { httpStatus: 500, retryable: true },
  CLONE_TARGET_NOT_EMPTY: { httpStatus: 409, retryable: false },
  CLONE_FAILED: { httpStatus: 500, retryable: true },
  DB_AUTH_FAILED: { httpStatus: 500, retryable: false },
  DB_FAILED: { httpStatus: 500, retryable: true },
  TIMELINE_DIVERGED: { httpStatus: 409, retryable: false },
  REPO_AUTH_FAILED: { httpStatus: 500, retryable: false },
  REPO_BUCKET_MISSING: { httpStatus: 500, retryable: false },
  REPO_DELETE_GUARD: { httpStatus: 409, retryable: false },
  REPO_VERIFY_FAILED: { httpStatus: 500, retryable: true },
  REPO_FAILED: { httpStatus: 500, retryable: true },
  FILES_PATH_OUTSIDE_TREE: { httpStatus: 400, retryable: false },
  FILES_FAILED: { httpStatus: 500, retryable: true },
  NOTIFY_FAILED: { httpStatus: 500, retryable: true },
  NIMBUS_STATE_FAILED: { httpStatus: 500, retryable: true },
  USAGE: { httpStatus: 400, retryable: false },
  NOT_FOUND: { httpStatus: 404, retryable: false },
  METHOD_NOT_ALLOWED: { httpStatus: 405, retryable: false },
  AUTH_RATE_LIMITED: { httpStatus: 429, retryable: true },
  BAD_JSON: { httpStatus: 400, retryable: false },
  BODY_TOO_LARGE: { httpStatus: 413, retryable: false },
  BAD_REQUEST: { httpStatus: 400, retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { httpStatus: 415, retryable: false },
  REQUEST_REFUSED: { httpStatus: 409, retryable: true },
  TOO_MANY_STREAMS: { httpStatus: 503, retryable: true },
  INTERNAL: { httpStatus: 500, retryable: true },
};

/** The API's JSON error answer for `code`: its status from ERROR_INFO and the documented body. */
export function apiError(code: ErrorCode, message: string): { status: number; body: { error: ErrorCode; message: string } } {
  return { status: ERROR_INFO[code].httpStatus, body: { error: code, message } };
}

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
