import { sql, type AnyColumn, type SQL } from 'drizzle-orm';

/*
 * `column IN (list)` with the list as one parameter. drizzle's inArray binds one parameter
 * per value, which for the thousands of ids of a DLQ round or a push batch costs more to
 * build and send than the query takes to run.
 */

/** `column IN (values)`, any strings (sent as one JSON array). */
export function inTextList(column: AnyColumn, values: readonly string[]): SQL {
  return sql`${column} IN (SELECT jsonb_array_elements_text(${JSON.stringify(values)}::jsonb))`;
}

/** `column = ANY(values)` for integer ids (sent as one array literal). */
export function inIdList(column: AnyColumn, values: readonly number[]): SQL {
  const literal = `{${values.map((v) => {
    if (!Number.isSafeInteger(v)) throw new TypeError(`not an integer id: ${v}`);
    return String(v);
  }).join(',')}}`;
  return sql`${column} = ANY(${literal}::bigint[])`;
}
