package clickhouse

// TrafficModelsQuery lists the (provider, model) pairs of events of one kind
// (first parameter) since a time (second, unix seconds) with their count and
// newest time (unix seconds), most requested first. `aivis catalog check`
// uses it to find models of recent traffic that a catalog does not price.
const TrafficModelsQuery = `SELECT provider, model, count(), toUInt32(max(time)) FROM ` + TableEvents + `
WHERE kind = ? AND time >= toDateTime(?)
GROUP BY provider, model ORDER BY count() DESC, provider, model`
