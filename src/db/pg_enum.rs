//! `pg_enum!`: Diesel conversions between a generated Rust enum and its PostgreSQL enum type.

/// Implements `ToSql`/`FromSql` (as the label text, which is how PostgreSQL sends enums in the
/// binary protocol), `as_str`, and `From<Enum> for Value` for a generated enum.
#[macro_export]
macro_rules! pg_enum {
    ($rust:ident, $sql:ty, $sql_name:literal, [$(($variant:ident, $label:literal)),* $(,)?]) => {
        impl $rust {
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($rust::$variant => $label,)*
                }
            }
        }

        impl diesel::serialize::ToSql<$sql, diesel::pg::Pg> for $rust {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                use std::io::Write;
                out.write_all(self.as_str().as_bytes())?;
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<$sql, diesel::pg::Pg> for $rust {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                match std::str::from_utf8(bytes.as_bytes())? {
                    $($label => Ok($rust::$variant),)*
                    other => Err(format!("unknown {} label {other:?}", $sql_name).into()),
                }
            }
        }

        impl From<$rust> for $crate::db::value::Value {
            fn from(v: $rust) -> Self {
                $crate::db::value::Value::Text(v.as_str().to_string())
            }
        }
    };
}
