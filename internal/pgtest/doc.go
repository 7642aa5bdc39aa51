// Package pgtest gives tests a PostgreSQL server to run against. It is for tests
// only: it starts containers with testcontainers-go, and fails or skips the calling
// test when it cannot.
//
// Where the server comes from:
//
//   - MQTTSTORE_POSTGRES_DSN set: that server (a postgres:// URL whose host must be
//     127.0.0.1, localhost or ::1; tests talk to loopback only).
//   - otherwise one container per test binary, from the image in
//     MQTTSTORE_POSTGRES_IMAGE (default postgres:16-alpine), started on first use
//     and terminated by [Main] (or [Terminate]) when the binary's tests are done.
//
// Every [DSN] is a fresh, empty schema on that server (the driver's ?schema= option),
// dropped when the test ends, so tests may run in parallel.
//
// Containers need TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (otherwise testcontainers-go
// dials the default gateway on some machines) and, where the Ryuk image cannot be
// pulled, TESTCONTAINERS_RYUK_DISABLED=true: in this project, source
// ../shared/ci/testcontainers.env. Without Docker and without a DSN the tests skip
// with a message saying so, except when CI is set, where they fail.
//
// It imports pgx and testcontainers-go; it must not import the driver (the driver's
// own tests import both).
package pgtest
