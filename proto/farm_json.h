/* farm_json: the bridge between JSON (what people type and read) and
 * MessagePack (what travels on the wire).
 *
 * The client takes task parameters as JSON and the farm carries them as
 * MessagePack; results come back as MessagePack and are shown as JSON. The
 * reader parses a complete JSON text in two passes over the input: the
 * first validates everything and counts the members of every container
 * (MessagePack needs each count before the members), the second emits the
 * packed value. A malformed text therefore never reaches the packer; only
 * a failing packer can leave partial output behind. Nothing in the reader
 * depends on the process locale. The writer turns any msgpack_object into
 * JSON, lossy only where JSON has no equivalent (NaN/Inf become null,
 * invalid UTF-8 becomes U+FFFD, binary that is not text becomes base64).
 * Neither side keeps state; both are safe to use from several threads.
 */
#ifndef FARM_JSON_H
#define FARM_JSON_H

#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>

/* Deepest nesting of arrays and objects the reader accepts. */
#define FARM_JSON_MAX_DEPTH 32 /* what msgpack-c (and so the farm) can unpack */

/* Parse one JSON value from text[0..len) (RFC 8259; leading and trailing
 * whitespace allowed, anything else after the value is an error; text need
 * not be NUL terminated) and write it as MessagePack through pk.
 *
 * Objects -> map (keys str, in input order, duplicates kept), arrays ->
 * array, strings -> str (UTF-8 validated, all escapes decoded including
 * \uXXXX surrogate pairs; lone surrogates and unescaped control characters
 * below 0x20 are rejected), true/false -> bool, null -> nil. Numbers: an
 * integer literal (no '.', 'e', 'E') that fits int64 -> msgpack_pack_int64,
 * one that fits uint64 but not int64 -> msgpack_pack_uint64, anything else
 * -> double, converted as strtod does in the "C" locale whatever the
 * process locale (out-of-range values become +-Inf or 0 as with strtod).
 *
 * Returns 0 on success. Returns FARM_EBADREQ for invalid JSON,
 * FARM_ETOOLARGE for nesting deeper than FARM_JSON_MAX_DEPTH (or a string
 * or container over MessagePack's 2^32-1 limit), and FARM_EINTERNAL if pk
 * is NULL, the packer's write callback fails or memory runs out. Note that
 * msgpack-c's unpacker (msgpack_unpack_next) refuses more than 32 levels,
 * so output deeper than that packs fine but cannot be unpacked by it. On error, err (errlen
 * bytes; may be NULL if errlen is 0) receives a NUL-terminated message
 * such as "invalid JSON at line 3 column 7: expected ':'" (lines and
 * columns count from 1, columns in characters); on success err is set to
 * "". Only a packer failure can leave partial output in pk; callers
 * discard the packer's output on any error. */
int farm_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, char *err, size_t errlen);

/* Write object o as JSON to out. indent <= 0: compact, on one line with no
 * spaces; indent > 0: pretty, one member per line with that many spaces
 * per level and ": " after keys. Empty arrays and maps are [] and {}. No
 * newline is written after the value.
 *
 * str -> JSON string ('"', '\' and control characters escaped, as \b \f \n
 * \r \t or \u00XX; each byte that is not part of valid UTF-8 becomes
 * \ufffd); bin -> JSON string when the bytes are valid UTF-8, else
 * {"base64":"..."}; integers -> integer; float64 -> the shortest of
 * %.15g/%.16g/%.17g that reads back to the same double (float32 likewise
 * with %.6g..%.9g read back as float), always with '.' as decimal point;
 * NaN/Inf -> null; nil -> null; bool -> true/false; array; map (a key that
 * is not a str is written as its compact JSON text inside a string); ext ->
 * {"ext":type,"base64":"..."}.
 *
 * Returns 0, or -errno if writing to out fails (-EIO if errno does not
 * say why, or if ferror(out) is set afterwards), or -EINVAL if out or o is
 * NULL. Output may be partial on failure. The stream is not flushed:
 * output still buffered in out can fail later, so callers check
 * fflush/fclose as usual. Recursion follows the depth of o (msgpack-c's
 * own unpacker stops at 32 levels). */
int farm_json_write(FILE *out, const msgpack_object *o, int indent);

#endif
