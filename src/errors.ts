/**
 * An error a client (or peer) caused and can act on: rendered as
 * `{"error": message, "code": CODE, ...details}` with its HTTP status.
 */
export class ApiError extends Error {
  constructor(
    public readonly status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 429 | 503,
    public readonly code: string,
    message: string,
    public readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (code: string, message: string, details?: Record<string, unknown>) => new ApiError(400, code, message, details);
export const notFound = (message = 'not found') => new ApiError(404, 'NOT_FOUND', message);

/** Thrown by validators; collected into one VALIDATION_FAILED answer. */
export class ValidationError extends ApiError {
  constructor(public readonly field: string, message: string, code = 'VALIDATION_FAILED') {
    super(400, code, `${field}: ${message}`, { field });
    this.name = 'ValidationError';
  }
}
