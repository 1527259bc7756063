package clickhouse

// TrafficModelsQuery lists the (provider, model) pairs of events of one kind
// (first parameter) since a time (second, unix seconds) with their count and
// newest time (unix seconds), most requested first. `aivis catalog check`
// uses it to find models of recent traffic that a catalog does not price.
const TrafficModelsQuery = `SELECT provider, model, count(), toUInt32(max(time)) FROM ` + TableEvents + `
WHERE kind = ? AND time >= toDateTime(?)
GROUP BY provider, model ORDER BY count() DESC, provider, model`

// ModelNamesQuery drills down into one canonical model: the requests and
// cost of each name it was reported under (gpt-4o, gpt-4o-2024-08-06,
// GPT-4o for gpt-4o), newest rating of each event. Arguments: the
// canonical model, then the range [from, to) as unix seconds.
const ModelNamesQuery = `SELECT provider, model, count() AS requests, sum(cost_usd) AS usd
FROM ` + TableEvents + ` FINAL
WHERE canonical_model = ? AND time >= toDateTime(?) AND time < toDateTime(?)
GROUP BY provider, model ORDER BY usd DESC, provider, model`
