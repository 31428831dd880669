/**
 * MLflow's error codes (mlflow/protos/databricks.proto) and the error every tracking and registry
 * verb throws. The code is what MLflow's REST API would put in `error_code`, so callers (and the
 * remote client) can map between the two without string matching.
 */
export type MlflowErrorCode =
  | 'INVALID_PARAMETER_VALUE'
  | 'BAD_REQUEST'
  | 'RESOURCE_ALREADY_EXISTS'
  | 'RESOURCE_DOES_NOT_EXIST'
  | 'NOT_FOUND'
  | 'INVALID_STATE'
  | 'INTERNAL_ERROR'
  | 'RESOURCE_EXHAUSTED'
  | 'PERMISSION_DENIED'
  | 'NOT_IMPLEMENTED';

const HTTP_STATUS: Record<MlflowErrorCode, number> = {
  INVALID_PARAMETER_VALUE: 400,
  BAD_REQUEST: 400,
  RESOURCE_ALREADY_EXISTS: 400,
  RESOURCE_DOES_NOT_EXIST: 404,
  NOT_FOUND: 404,
  INVALID_STATE: 500,
  INTERNAL_ERROR: 500,
  RESOURCE_EXHAUSTED: 429,
  PERMISSION_DENIED: 403,
  NOT_IMPLEMENTED: 501,
};

export class MlflowError extends Error {
  override name = 'MlflowError';
  constructor(
    readonly errorCode: MlflowErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** MLflow's snake_case spelling, as in REST error bodies. */
  get error_code(): MlflowErrorCode {
    return this.errorCode;
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.errorCode];
  }

  toJSON(): { error_code: MlflowErrorCode; message: string } {
    return { error_code: this.errorCode, message: this.message };
  }
}

export function invalidParameter(message: string): MlflowError {
  return new MlflowError('INVALID_PARAMETER_VALUE', message);
}

export function isMlflowError(e: unknown, code?: MlflowErrorCode): e is MlflowError {
  return e instanceof MlflowError && (code === undefined || e.errorCode === code);
}
