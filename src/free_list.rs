//! The check every stored slab with a free list needs when it is read back.

/// Checks that `free` names exactly the vacant (`None`) entries of
/// `entries`, each once: an id in use, repeated or out of range would hand
/// one slot to two owners; a vacant entry left out would never be reused.
///
/// # Errors
///
/// Text naming `field` and the first id at fault.
pub(crate) fn check_free_list<T>(
    field: &str,
    entries: &[Option<T>],
    free: &[u32],
) -> Result<(), String> {
    let mut listed = vec![false; entries.len()];
    for &id in free {
        match listed.get_mut(id as usize) {
            Some(seen) if !*seen && entries[id as usize].is_none() => *seen = true,
            _ => return Err(format!("{field}: {id} is in use, repeated or out of range")),
        }
    }
    if entries.iter().filter(|e| e.is_none()).count() != free.len() {
        return Err(format!("{field}: a vacant entry is missing"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_free_list;

    #[test]
    fn the_free_list_must_name_each_vacant_entry_once() {
        let entries = [Some('a'), None, Some('b'), None];
        assert_eq!(check_free_list("free", &entries, &[3, 1]), Ok(()));
        for bad in [&[1, 1][..], &[0, 1, 3], &[1, 3, 9], &[1]] {
            assert!(check_free_list("free", &entries, bad).is_err(), "{bad:?}");
        }
    }
}
