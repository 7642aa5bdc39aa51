// Package pgtest gives this module's tests a PostgreSQL server to run against. It
// is for tests only: it starts containers with testcontainers-go, and skips or
// fails the calling test when it cannot.
//
// Where the server comes from:
//
//   - MQTTSTORE_POSTGRES_DSN set: that server (a postgres:// URL whose host must be
//     127.0.0.1, localhost or ::1; tests talk to loopback only).
//   - otherwise one container per test binary, from the image in
//     MQTTSTORE_POSTGRES_IMAGE (default postgres:16-alpine, the official image),
//     started on first use and terminated by [Main] (or [Terminate]) when the
//     binary's tests are done. Docker is found without any setting: $DOCKER_HOST,
//     or a socket that answers at /var/run/docker.sock (or the rootless and Docker
//     Desktop places); see setupDocker for the testcontainers-go settings it
//     defaults.
//
// Every [DSN] is a fresh, empty schema on that server (the driver's ?schema= option),
// dropped when the test ends, so tests may run in parallel.
//
// Without a server the tests skip, except when CI is set, where they fail. [Main]
// then prints one line saying why and the exact command that runs them: on stdout
// (shown by go test -v) and, since plain `go test ./...` hides what passing packages
// print, on the terminal, once per go test run; such a run is not cached, so the
// line shows until the tests can run.
package pgtest
