import { enumParam, intParam, patternParam } from './query.js';

/*
 * The parameters of the operator lists, shared by the admin API (query strings) and the
 * CLI (flags), so both accept and refuse exactly the same values.
 */

export const dlqListParams = {
  status: enumParam(['pending', 'quarantined', 'replayed', 'purged', 'superseded'] as const),
  limit: intParam({ fallback: 100, min: 1, max: 1000, digits: 7, clamp: 'both' }),
  offset: intParam({ fallback: 0, min: 0, max: 1_000_000, digits: 7, clamp: 'both' }),
  peer: patternParam(/^[A-Za-z0-9_\-:@.]{1,128}$/, 'a peer id'),
};

export const refusalListParams = {
  status: enumParam(['pending', 'resolved'] as const),
  limit: intParam({ fallback: 100, min: 1, max: 1000, digits: 7, clamp: 'both' }),
  offset: intParam({ fallback: 0, min: 0, max: 1_000_000, digits: 7, clamp: 'both' }),
  peer: patternParam(/^[A-Za-z0-9_\-:@.]{1,128}$/, 'a peer id'),
};
