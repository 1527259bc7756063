package savings

// SetRules replaces the rules a Recommender loaded from its file.
func SetRules(r *Recommender, rules Rules) { r.rules = rules }
