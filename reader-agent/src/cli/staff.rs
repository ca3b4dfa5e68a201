//! `staff`: the kiosk's staff accounts.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::StaffCommand;

pub fn staff_command(command: StaffCommand) -> ExitCode {
    use onshi_reader_agent::kiosk::staff_auth::{check_staff_id, Accounts};
    let done = match command {
        StaffCommand::Add {
            state_dir,
            staff_id,
            password_stdin,
        } => check_staff_id(&staff_id)
            .and_then(|()| read_new_password(password_stdin))
            .and_then(|password| Accounts::in_dir(&state_dir).set_password(&staff_id, &password))
            .map(|new| {
                if new {
                    println!("added staff member {staff_id}");
                } else {
                    println!("set the password of staff member {staff_id}");
                }
            }),
        StaffCommand::Remove {
            state_dir,
            staff_id,
        } => Accounts::in_dir(&state_dir)
            .remove(&staff_id)
            .and_then(|was| {
                if was {
                    println!("removed staff member {staff_id}");
                    Ok(())
                } else {
                    Err(format!("there is no staff member {staff_id}"))
                }
            }),
        StaffCommand::List { state_dir } => Accounts::in_dir(&state_dir).list().map(|ids| {
            for id in ids {
                println!("{id}");
            }
        }),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reader-agent: {e}");
            ExitCode::from(2)
        }
    }
}

/// A new password from stdin (one line) or typed twice on the terminal.
fn read_new_password(from_stdin: bool) -> Result<zeroize::Zeroizing<String>, String> {
    use zeroize::Zeroizing;
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
        return Ok(trimmed);
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask the password on: pass --password-stdin".into());
    }
    let first =
        Zeroizing::new(rpassword::prompt_password("new password: ").map_err(|e| e.to_string())?);
    let again =
        Zeroizing::new(rpassword::prompt_password("the same again: ").map_err(|e| e.to_string())?);
    if *first != *again {
        return Err("the two passwords differ".into());
    }
    Ok(first)
}
