//! What every list shares: a `limit` and a `cursor` in its query, and an
//! answer that is a [`Page`] in the list's order whose `next` is the cursor
//! of the page after it.
//!
//! A list handler parses its query, checks its filters and its [`Paging`]
//! (in the order its refusals should come), then hands [`list_page`] the
//! store read of one page:
//!
//! ```ignore
//! let paging = parse_query::<PageParams>(&request)?.paging()?;
//! list_page(
//!     &state.store,
//!     paging,
//!     move |db, after, limit| api_keys::list(db, &tenant, after, limit),
//!     |row| &row.id,
//!     view,
//! )
//! .await
//! ```

use super::problem::ApiError;
use super::query::id_param;
use crate::core::input::domain::FieldError;
use crate::store::{Db, Store, StoreError};
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `limit` and `cursor` of every list. A list with filters declares the
/// two again beside them, with the same attributes (a query struct takes
/// no `flatten`: it would lose `deny_unknown_fields`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many items a page holds (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    pub cursor: Option<String>,
}

pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

impl PageParams {
    pub fn paging(self) -> Result<Paging, ApiError> {
        Paging::new(self.limit, self.cursor)
    }
}

/// A list's `limit` and `cursor`, checked.
#[derive(Debug)]
pub struct Paging {
    limit: i64,
    cursor: Option<String>,
}

impl Paging {
    /// Refuses, naming it, a `limit` outside 1 to [`MAX_PAGE`] (absent is
    /// [`DEFAULT_PAGE`]), then a `cursor` that cannot be an id.
    pub fn new(limit: Option<i64>, cursor: Option<String>) -> Result<Paging, ApiError> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(limit) if (1..=MAX_PAGE).contains(&limit) => limit,
            Some(_) => {
                return Err(
                    FieldError::new("limit", format!("must be between 1 and {MAX_PAGE}")).into(),
                )
            }
        };
        let cursor = id_param("cursor", cursor.as_deref())?;
        Ok(Paging { limit, cursor })
    }

    /// Runs `read` on the store with the cursor and the number of rows to
    /// read: one more than a page holds, which only tells whether another
    /// page follows. What it returns is for [`Self::page`].
    pub async fn read<X, F>(&self, store: &Store, read: F) -> Result<X, StoreError>
    where
        X: Send + 'static,
        F: FnOnce(&mut Db, Option<&str>, i64) -> Result<X, StoreError> + Send + 'static,
    {
        let (after, limit) = (self.cursor.clone(), self.limit + 1);
        store.run(move |db| read(db, after.as_deref(), limit)).await
    }

    /// The page of the rows [`Self::read`] read: at most `limit` of them,
    /// shown through `view`, and the `key` of the last one as the cursor of
    /// the next page when there is one.
    pub fn page<R, T>(
        &self,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> &str,
        view: impl Fn(R) -> T,
    ) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|row| key(row).to_owned())
        } else {
            None
        };
        Page {
            data: rows.into_iter().map(view).collect(),
            next,
        }
    }
}

/// A page of a list, in id order.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    data: Vec<T>,
    /// The `cursor` of the next page; `null` on the last one.
    next: Option<String>,
}

/// The 200 answer of a list: the page `read` finds (see [`Paging::read`]
/// and [`Paging::page`]).
pub async fn list_page<R, T, F>(
    store: &Store,
    paging: Paging,
    read: F,
    key: impl Fn(&R) -> &str,
    view: impl Fn(R) -> T,
) -> Result<HttpResponse, ApiError>
where
    R: Send + 'static,
    T: Serialize,
    F: FnOnce(&mut Db, Option<&str>, i64) -> Result<Vec<R>, StoreError> + Send + 'static,
{
    let rows = paging.read(store, read).await?;
    Ok(HttpResponse::Ok().json(paging.page(rows, key, view)))
}
