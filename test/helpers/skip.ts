/**
 * The name suffix of a conditionally skipped test or suite: ` [skipped: <reason>]` when it
 * is skipped, nothing when it runs. The reason thus lands in the JSON report (test and
 * suite names), where .ci/run reads it to list every skip with its reason:
 *
 *   it.skipIf(!tool)(`checks X${skipNote(!tool, 'tool not installed')}`, ...)
 */
export const skipNote = (skipped: boolean, reason: string): string => (skipped ? ` [skipped: ${reason}]` : '');

/** The reason .ci/run prints for a skip whose name carries none. */
export const SKIP_NOTE_PATTERN = /\[skipped: ([^\]]+)\]/;
