# S2Q's "academy_4_vs_3" (its code: academy_4_vs_2_with_keeper): 4 attackers against a goalkeeper and 2 centre
# backs, in gfootball's scenario format. scripts/install_gfootball.sh copies it into gfootball/scenarios/;
# it is data for gfootball's scenario builder, not imported by jaxfactor.
from . import *  # noqa: F401,F403  (gfootball.scenarios: Team, e_PlayerRole_*)


def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.SetBallPosition(0.62, 0.0)

    builder.SetTeam(Team.e_Left)  # noqa: F405
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)  # noqa: F405
    builder.AddPlayer(0.6, 0.0, e_PlayerRole_CM)  # noqa: F405
    builder.AddPlayer(0.7, 0.2, e_PlayerRole_CM)  # noqa: F405
    builder.AddPlayer(0.7, -0.2, e_PlayerRole_CM)  # noqa: F405
    builder.AddPlayer(0.6, 0.35, e_PlayerRole_CM)  # noqa: F405

    builder.SetTeam(Team.e_Right)  # noqa: F405
    builder.AddPlayer(-1.0, 0.0, e_PlayerRole_GK)  # noqa: F405
    builder.AddPlayer(-0.75, 0.1, e_PlayerRole_CB)  # noqa: F405
    builder.AddPlayer(-0.75, -0.1, e_PlayerRole_CB)  # noqa: F405
