//! SQL names from configuration: table names (optionally schema-qualified)
//! and plain identifiers such as a NOTIFY channel, validated so that they can
//! be put in a statement inside double quotes without escaping.

use std::fmt;

/// A PostgreSQL table name, validated, optionally schema-qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: Option<String>,
    table: String,
}

impl TableName {
    /// Parses `table` or `schema.table`; each part an SQL identifier of at most
    /// 63 bytes made of letters, digits, `_` and `$`, not starting with a digit or `$`.
    pub fn parse(s: &str) -> Option<TableName> {
        let (schema, table) = match s.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, s),
        };
        if !schema.is_none_or(is_identifier) || !is_identifier(table) {
            return None;
        }
        Some(TableName {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }

    /// The name quoted for SQL: `"schema"."table"`.
    pub(crate) fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}\"", self.table),
            None => format!("\"{}\"", self.table),
        }
    }

    /// The unqualified table name.
    pub(crate) fn table(&self) -> &str {
        &self.table
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// Whether `s` is a plain SQL identifier that needs no escaping inside quotes.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    !s.is_empty()
        && s.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_quoted_and_may_be_qualified() {
        assert_eq!(
            TableName::parse("ops.runtime_records").unwrap().quoted(),
            "\"ops\".\"runtime_records\""
        );
        assert_eq!(TableName::parse("_t$1").unwrap().quoted(), "\"_t$1\"");
        for bad in ["", ".", "a.", ".a", "a\"b", "a-b", "$a", &"t".repeat(64)] {
            assert!(TableName::parse(bad).is_none(), "{bad:?}");
        }
    }
}
