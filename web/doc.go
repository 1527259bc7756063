// Package web is aivis's read side over HTTP: a JSON read API (spend by
// team, project, model, user and day, cost over time, anomalies, budgets
// and GPU cost), described by the OpenAPI 3 document it serves at
// /api/openapi.json, and a built-in page of charts drawn from that API
// (`aivis serve`). Everything it answers comes from ClickHouse through the
// report and budget packages' queries, so its numbers are the report's;
// money stays a decimal string from the server to the page. The page and
// its chart library (Chart.js, vendored from npm) are embedded in the
// binary.
package web
