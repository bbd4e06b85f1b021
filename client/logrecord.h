#ifndef BATONCTL_LOGRECORD_H
#define BATONCTL_LOGRECORD_H

#include <stddef.h>

#include "protocol.h"

/*
 * The lines of `log` records and of `output` events (baton-protocol(7)),
 * shown in the forms of batond's log files (logline.h), from each line's
 * exact bytes: those of line_base64 when the record has it, else line.
 */

/*
 * Appends a log record as the text line of a log file, with '\n':
 *
 *   2026-12-01T19:45:00.123456Z web[4242] gen 3 err: TEXT [cut]
 *
 * Returns 0, or -1 when rec is no well-formed log record; nothing is
 * appended then.
 */
int logrecord_text(struct protocol_buf *b, const struct protocol_record *rec);

/*
 * Appends a log record as the object of a log file with log_format = json,
 * with '\n', byte for byte: the time as the record has it, then the fields
 * of logline_json. Returns 0, or -1 as logrecord_text does.
 */
int logrecord_json(struct protocol_buf *b, const struct protocol_record *rec);

/*
 * Appends the line of an output event as the text form shows it, without
 * the time and the '\n': web[4242] gen 3 err: TEXT [cut]. Returns 0, or -1
 * when a field is missing or malformed.
 */
int logrecord_event(struct protocol_buf *b, const struct protocol_record *rec);

/*
 * Appends len bytes of text as the text form shows a line's text: control
 * characters, separators and bytes not UTF-8 as \xNN.
 */
void logrecord_escape(struct protocol_buf *b, const char *text, size_t len);

#endif
