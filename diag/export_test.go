package diag

// Golden compares got with the golden file at path, or rewrites it under
// -update; for the external tests (package diag_test).
var Golden = golden
