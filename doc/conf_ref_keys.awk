# conf_ref_keys.awk - the keys README.md's "## Configuration reference"
# documents, one a line: "key" at the top level, "section|key" inside a
# section, and each section's own name ("broker", "plugin|params"); then,
# after a tab, the documented default when it is one code span (`4`,
# `"info"`), for the test to compare with the schema's.
# tests/unit/test_man.c compares them with the keys of the parser's
# schema (runtime/conf/conf_schema.c), both ways.
#
#   awk -f doc/conf_ref_keys.awk README.md
/^## / {
	in_section = ($0 == "## Configuration reference")
	next
}
!in_section { next }
/^### / {
	section = ""
	table = 0
	if (match($0, /^### `[a-z_]+ /)) {
		section = substr($0, 6, RLENGTH - 6)
		print section
	}
	next
}
/^\| key \| default \| meaning \|$/ { table = 1; next }
/^\|---/ { next }
/^\|/ && table {
	cell = $0
	sub(/^\| */, "", cell)
	# The first cell, up to the | that ends it outside a code span.
	out = ""
	code = 0
	for (i = 1; i <= length(cell); i++) {
		c = substr(cell, i, 1)
		if (c == "`")
			code = !code
		if (c == "|" && !code)
			break
		out = out c
	}
	# The default: the second cell, when it is exactly one code span.
	rest = substr(cell, length(out) + 2)
	def = ""
	if (match(rest, /^ *`[^`]*` *\|/)) {
		def = substr(rest, RSTART, RLENGTH - 1)
		sub(/^ *`/, "", def)
		sub(/` *$/, "", def)
	}
	# Each code span names a key (its first word: "params { ... }").
	while (match(out, /`[a-z_]+/)) {
		key = substr(out, RSTART + 1, RLENGTH - 1)
		print (section == "" ? key : section "|" key) "\t" def
		out = substr(out, RSTART + RLENGTH)
		sub(/^[^`]*`/, "", out) # the rest of that span
	}
	next
}
{ table = 0 }
