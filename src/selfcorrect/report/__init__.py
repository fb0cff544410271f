"""selfcorrect.report"""
